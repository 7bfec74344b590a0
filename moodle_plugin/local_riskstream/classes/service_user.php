<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream;

use context_course;
use context_system;
use stdClass;

/**
 * The connector's service user: the capabilities it needs, and setting it up in one step.
 *
 * One list (CAPABILITIES) feeds cli/setup.php (the role it creates), the check_access web
 * service (what `riskstream connector check` reports missing) and the README.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class service_user {
    /** Predefined service of db/services.php. */
    const SERVICE = 'local_riskstream';
    /** Role created by setup(). */
    const ROLE = 'riskstreamconnector';

    /**
     * Capability => why the connector needs it (the web-service function that checks it).
     *
     * Granted at system level so they hold in every course. Without the quiz and assignment
     * view capabilities Moodle does not fail: it silently returns no quizzes, no
     * assignments and only the course total in the gradebook.
     */
    const CAPABILITIES = [
        'webservice/rest:use' => 'REST protocol',
        'report/log:view' => 'local_riskstream_get_events (the event log)',
        'local/riskstream:pushalerts' => 'local_riskstream_push_alerts (alerts into Moodle)',
        'local/riskstream:readfeedback' => 'local_riskstream_get_feedback (teachers\' feedback on alerts)',
        'moodle/course:view' => 'every course function (courses it is not enrolled in)',
        'moodle/course:viewhiddencourses' => 'every course function (hidden courses whose log it reads)',
        'moodle/course:viewhiddenactivities' => 'quiz and assignment functions (hidden activities)',
        'moodle/course:viewparticipants' => 'core_enrol_get_enrolled_users (rosters)',
        'moodle/user:viewdetails' => 'core_enrol_get_enrolled_users (rosters)',
        'moodle/site:accessallgroups' => 'core_enrol_get_enrolled_users (whole roster in separate-groups courses)',
        'mod/quiz:view' => 'mod_quiz_get_quizzes_by_courses (quiz deadlines; empty without it)',
        'mod/quiz:viewreports' => 'mod_quiz_get_user_quiz_attempts (other users\' attempt grades)',
        'mod/assign:view' => 'mod_assign_get_assignments (assignment deadlines; empty without it)',
        'moodle/grade:viewall' => 'gradereport_user_get_grade_items (grades of all students)',
        'gradereport/user:view' => 'gradereport_user_get_grade_items',
    ];

    /**
     * Capabilities of CAPABILITIES the user lacks in a context (system, or a course).
     *
     * @param int $userid
     * @param int $courseid 0 for the system context
     * @return string[] capability names
     */
    public static function missing(int $userid, int $courseid = 0): array {
        $context = $courseid ? context_course::instance($courseid) : context_system::instance();
        $missing = [];
        foreach (array_keys(self::CAPABILITIES) as $cap) {
            if (!get_capability_info($cap)) {
                continue; // A capability of a plugin this site does not have.
            }
            if (!has_capability($cap, $context, $userid, false)) {
                $missing[] = $cap;
            }
        }
        return $missing;
    }

    /**
     * Create or repair everything the connector needs; idempotent.
     *
     * Web services and REST on; the user (manual auth, random password: it never logs in);
     * a system role holding exactly CAPABILITIES, assigned to it; the user authorised on
     * the predefined service. Returns a new token only when the user has none for the
     * service (or $rotate): a token is shown once, never read back.
     *
     * @param string $username
     * @param bool $rotate replace existing tokens
     * @return array ['user' => stdClass, 'roleid' => int, 'token' => ?string, 'created' => bool]
     */
    public static function setup(string $username, bool $rotate = false): array {
        global $CFG, $DB;
        require_once($CFG->dirroot . '/user/lib.php');
        require_once($CFG->dirroot . '/webservice/lib.php');

        set_config('enablewebservices', 1);
        $protocols = array_filter(explode(',', (string)get_config('core', 'webserviceprotocols')));
        if (!in_array('rest', $protocols, true)) {
            $protocols[] = 'rest';
            set_config('webserviceprotocols', implode(',', $protocols));
        }

        $user = $DB->get_record('user', ['username' => $username, 'mnethostid' => $CFG->mnet_localhost_id,
            'deleted' => 0]);
        $created = false;
        if (!$user) {
            $id = user_create_user((object)[
                'username' => $username,
                'auth' => 'manual',
                'password' => generate_password(32) . 'aA1!',
                'firstname' => 'RiskStream',
                'lastname' => 'connector',
                'email' => $username . '@invalid.invalid',
                'confirmed' => 1,
                'mnethostid' => $CFG->mnet_localhost_id,
            ], true, false);
            $user = $DB->get_record('user', ['id' => $id], '*', MUST_EXIST);
            $created = true;
        }

        $system = context_system::instance();
        $role = $DB->get_record('role', ['shortname' => self::ROLE]);
        $roleid = $role ? (int)$role->id : create_role('RiskStream connector', self::ROLE,
            'The RiskStream connector\'s service user: exactly the capabilities it needs (local_riskstream).');
        set_role_contextlevels($roleid, [CONTEXT_SYSTEM]);
        // Exactly the list: allow what is needed, remove anything else an admin added.
        $current = $DB->get_records_menu('role_capabilities', ['roleid' => $roleid, 'contextid' => $system->id],
            '', 'capability, permission');
        foreach (array_keys($current) as $cap) {
            if (!array_key_exists($cap, self::CAPABILITIES)) {
                unassign_capability($cap, $roleid, $system->id);
            }
        }
        foreach (array_keys(self::CAPABILITIES) as $cap) {
            if (get_capability_info($cap)) {
                assign_capability($cap, CAP_ALLOW, $roleid, $system->id, true);
            }
        }
        role_assign($roleid, $user->id, $system->id);
        accesslib_clear_all_caches(false);

        $ws = new \webservice();
        $service = $ws->get_external_service_by_shortname(self::SERVICE, MUST_EXIST);
        if (!$service->enabled) {
            $service->enabled = 1;
            $DB->update_record('external_services', $service);
        }
        if (!$ws->get_ws_authorised_user($service->id, $user->id)) {
            $ws->add_ws_authorised_user((object)['externalserviceid' => $service->id, 'userid' => $user->id]);
        }

        $token = null;
        $existing = $DB->record_exists('external_tokens', ['userid' => $user->id, 'externalserviceid' => $service->id,
            'tokentype' => EXTERNAL_TOKEN_PERMANENT]);
        if ($rotate && $existing) {
            $DB->delete_records('external_tokens', ['userid' => $user->id, 'externalserviceid' => $service->id,
                'tokentype' => EXTERNAL_TOKEN_PERMANENT]);
            $existing = false;
        }
        if (!$existing) {
            $token = \core_external\util::generate_token(EXTERNAL_TOKEN_PERMANENT, $service, $user->id, $system, 0, '',
                'riskstream connector');
        }
        return ['user' => $user, 'roleid' => $roleid, 'token' => $token, 'created' => $created];
    }
}
