<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * Web-service functions and the predefined service the riskstream connector uses.
 *
 * The service also lists the core functions the connector calls, so one token of this
 * service is all an administrator has to create.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$functions = [
    'local_riskstream_get_events' => [
        'classname' => \local_riskstream\external\get_events::class,
        'methodname' => 'execute',
        'description' => 'Standard log rows with id > sinceid, in id order, paged (limit 1..5000).',
        'type' => 'read',
        'capabilities' => 'report/log:view',
        'ajax' => false,
    ],
    'local_riskstream_push_alerts' => [
        'classname' => \local_riskstream\external\push_alerts::class,
        'methodname' => 'execute',
        'description' => 'Store risk alerts idempotently (unique alert id) and notify the course teachers.',
        'type' => 'write',
        'capabilities' => 'local/riskstream:pushalerts',
        'ajax' => false,
    ],
    'local_riskstream_check_access' => [
        'classname' => \local_riskstream\external\check_access::class,
        'methodname' => 'execute',
        'description' => 'Which of the connector\'s capabilities the caller lacks, at system level and in a course.',
        'type' => 'read',
        'ajax' => false,
    ],
    'local_riskstream_get_enrolments' => [
        'classname' => \local_riskstream\external\get_enrolments::class,
        'methodname' => 'execute',
        'description' => 'When each active enrolment of a course started (user, timestart).',
        'type' => 'read',
        'capabilities' => 'moodle/course:viewparticipants',
        'ajax' => false,
    ],
    'local_riskstream_get_feedback' => [
        'classname' => \local_riskstream\external\get_feedback::class,
        'methodname' => 'execute',
        'description' => 'Teachers\' feedback on alerts with id > sinceid, in id order, paged.',
        'type' => 'read',
        'capabilities' => 'local/riskstream:readfeedback',
        'ajax' => false,
    ],
    'local_riskstream_give_feedback' => [
        'classname' => \local_riskstream\external\give_feedback::class,
        'methodname' => 'execute',
        'description' => 'A teacher marks an alert acknowledged, contacted (the student) or not useful.',
        'type' => 'write',
        'capabilities' => 'local/riskstream:viewalerts',
        'ajax' => true,
        'services' => [MOODLE_OFFICIAL_MOBILE_SERVICE],
    ],
];

$services = [
    'RiskStream connector' => [
        'shortname' => 'local_riskstream',
        'functions' => [
            'local_riskstream_get_events',
            'local_riskstream_push_alerts',
            'local_riskstream_check_access',
            'local_riskstream_get_feedback',
            'local_riskstream_get_enrolments',
            'core_webservice_get_site_info',
            'core_course_get_courses_by_field',
            'core_enrol_get_enrolled_users',
            'mod_quiz_get_quizzes_by_courses',
            'mod_quiz_get_user_attempts',
            'mod_assign_get_assignments',
            'gradereport_user_get_grade_items',
            'core_message_send_instant_messages',
        ],
        'restrictedusers' => 1,
        'enabled' => 1,
        'downloadfiles' => 0,
        'uploadfiles' => 0,
    ],
];

// Moodle 5.0 replaced mod_quiz_get_user_attempts (deprecated) by mod_quiz_get_user_quiz_attempts,
// a method of the legacy mod_quiz_external class (not a class of its own); list it only where it
// exists so the service installs on 4.5 as well.
if (method_exists('mod_quiz_external', 'get_user_quiz_attempts')) {
    $services['RiskStream connector']['functions'][] = 'mod_quiz_get_user_quiz_attempts';
}
