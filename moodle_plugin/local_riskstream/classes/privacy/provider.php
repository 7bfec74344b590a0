<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream\privacy;

use context;
use context_course;
use core_privacy\local\metadata\collection;
use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\contextlist;
use core_privacy\local\request\transform;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;

/**
 * Privacy: alerts are personal data about a student; export and delete them.
 *
 * The connector also sends the standard log to the riskstream service (an external location).
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class provider implements
    \core_privacy\local\metadata\provider,
    \core_privacy\local\request\plugin\provider,
    \core_privacy\local\request\core_userlist_provider,
    \core_privacy\local\request\user_preference_provider {

    /**
     * What is stored and sent.
     *
     * @param collection $collection
     * @return collection
     */
    public static function get_metadata(collection $collection): collection {
        $collection->add_database_table('local_riskstream_alerts', [
            'userid' => 'privacy:metadata:alerts:userid',
            'courseid' => 'privacy:metadata:alerts:courseid',
            'risk' => 'privacy:metadata:alerts:risk',
            'level' => 'privacy:metadata:alerts:level',
            'explanation' => 'privacy:metadata:alerts:explanation',
            'timecreated' => 'privacy:metadata:alerts:timecreated',
        ], 'privacy:metadata:alerts');
        $collection->add_database_table('local_riskstream_feedback', [
            'userid' => 'privacy:metadata:feedback:userid',
            'teacherid' => 'privacy:metadata:feedback:teacherid',
            'courseid' => 'privacy:metadata:feedback:courseid',
            'action' => 'privacy:metadata:feedback:action',
            'timecreated' => 'privacy:metadata:feedback:timecreated',
        ], 'privacy:metadata:feedback');
        $collection->add_external_location_link('riskstream', [
            'userid' => 'privacy:metadata:riskstream:userid',
            'courseid' => 'privacy:metadata:riskstream:courseid',
            'eventname' => 'privacy:metadata:riskstream:eventname',
            'timecreated' => 'privacy:metadata:riskstream:timecreated',
        ], 'privacy:metadata:riskstream');
        $collection->add_subsystem_link('core_message', [], 'privacy:metadata:core_message');
        $collection->add_user_preference(\local_riskstream\digest::PREF, 'privacy:metadata:preference:digest');
        return $collection;
    }

    /**
     * Course contexts with alerts about the user.
     *
     * @param int $userid
     * @return contextlist
     */
    public static function get_contexts_for_userid(int $userid): contextlist {
        $contextlist = new contextlist();
        $sql = "SELECT ctx.id
                  FROM {context} ctx
                  JOIN {local_riskstream_alerts} a ON a.courseid = ctx.instanceid AND ctx.contextlevel = :level
                 WHERE a.userid = :userid";
        $contextlist->add_from_sql($sql, ['level' => CONTEXT_COURSE, 'userid' => $userid]);
        $sql = "SELECT ctx.id
                  FROM {context} ctx
                  JOIN {local_riskstream_feedback} f ON f.courseid = ctx.instanceid AND ctx.contextlevel = :level
                 WHERE f.userid = :userid OR f.teacherid = :teacherid";
        $contextlist->add_from_sql($sql, ['level' => CONTEXT_COURSE, 'userid' => $userid, 'teacherid' => $userid]);
        return $contextlist;
    }

    /**
     * Users with alerts in a course context.
     *
     * @param userlist $userlist
     */
    public static function get_users_in_context(userlist $userlist): void {
        $context = $userlist->get_context();
        if (!$context instanceof context_course) {
            return;
        }
        $userlist->add_from_sql('userid', 'SELECT userid FROM {local_riskstream_alerts} WHERE courseid = :courseid',
            ['courseid' => $context->instanceid]);
        $userlist->add_from_sql('userid', 'SELECT userid FROM {local_riskstream_feedback} WHERE courseid = :courseid',
            ['courseid' => $context->instanceid]);
        $userlist->add_from_sql('teacherid', 'SELECT teacherid FROM {local_riskstream_feedback} WHERE courseid = :courseid',
            ['courseid' => $context->instanceid]);
    }

    /**
     * Export the user's alerts, per course.
     *
     * @param approved_contextlist $contextlist
     */
    public static function export_user_data(approved_contextlist $contextlist): void {
        global $DB;
        $userid = $contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if (!$context instanceof context_course) {
                continue;
            }
            $rows = $DB->get_records('local_riskstream_alerts',
                ['userid' => $userid, 'courseid' => $context->instanceid], 'timecreated ASC');
            $data = array_map(fn($r) => (object)[
                'risk' => $r->risk,
                'level' => $r->level,
                'explanation' => $r->explanation,
                'day' => $r->day,
                'modelversion' => $r->modelversion,
                'timecreated' => transform::datetime($r->timecreated),
            ], array_values($rows));
            $fb = $DB->get_records_select('local_riskstream_feedback',
                'courseid = :courseid AND (userid = :userid OR teacherid = :teacherid)',
                ['courseid' => $context->instanceid, 'userid' => $userid, 'teacherid' => $userid], 'id ASC');
            $feedback = array_map(fn($r) => (object)[
                'alertid' => $r->alertid,
                'action' => $r->action,
                'about_you' => transform::yesno($r->userid == $userid),
                'given_by_you' => transform::yesno($r->teacherid == $userid),
                'timecreated' => transform::datetime($r->timecreated),
            ], array_values($fb));
            if ($data || $feedback) {
                writer::with_context($context)->export_data(
                    [get_string('pluginname', 'local_riskstream')], (object)['alerts' => $data, 'feedback' => $feedback]);
            }
        }
    }

    /**
     * Delete every alert of a course.
     *
     * @param context $context
     */
    public static function delete_data_for_all_users_in_context(context $context): void {
        global $DB;
        if ($context instanceof context_course) {
            $DB->delete_records('local_riskstream_alerts', ['courseid' => $context->instanceid]);
            $DB->delete_records('local_riskstream_feedback', ['courseid' => $context->instanceid]);
        }
    }

    /**
     * Delete one user's alerts in the approved contexts.
     *
     * @param approved_contextlist $contextlist
     */
    public static function delete_data_for_user(approved_contextlist $contextlist): void {
        global $DB;
        $userid = $contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if ($context instanceof context_course) {
                $DB->delete_records('local_riskstream_alerts',
                    ['courseid' => $context->instanceid, 'userid' => $userid]);
                $DB->delete_records_select('local_riskstream_feedback',
                    'courseid = :courseid AND (userid = :userid OR teacherid = :teacherid)',
                    ['courseid' => $context->instanceid, 'userid' => $userid, 'teacherid' => $userid]);
            }
        }
    }

    /**
     * Delete several users' alerts in one course.
     *
     * @param approved_userlist $userlist
     */
    public static function delete_data_for_users(approved_userlist $userlist): void {
        global $DB;
        $context = $userlist->get_context();
        if (!$context instanceof context_course || !$userlist->get_userids()) {
            return;
        }
        [$insql, $params] = $DB->get_in_or_equal($userlist->get_userids(), SQL_PARAMS_NAMED);
        $params['courseid'] = $context->instanceid;
        $DB->delete_records_select('local_riskstream_alerts', "courseid = :courseid AND userid $insql", $params);
        [$insql2, $params2] = $DB->get_in_or_equal($userlist->get_userids(), SQL_PARAMS_NAMED, 'tid');
        $DB->delete_records_select('local_riskstream_feedback',
            "courseid = :courseid AND (userid $insql OR teacherid $insql2)", $params + $params2);
    }

    /**
     * Export the teacher's digest choice.
     *
     * @param int $userid
     */
    public static function export_user_preferences(int $userid): void {
        $pref = get_user_preferences(\local_riskstream\digest::PREF, null, $userid);
        if ($pref !== null) {
            writer::export_user_preference('local_riskstream', \local_riskstream\digest::PREF, $pref,
                get_string('privacy:metadata:preference:digest', 'local_riskstream'));
        }
    }
}
